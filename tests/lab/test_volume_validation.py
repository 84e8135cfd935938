"""lab.kube.volume_validation against the upstream rules it ports (pure: no server)."""

from __future__ import annotations

import pytest

from lab.kube import volume_validation as vv


@pytest.mark.parametrize(("key", "problems"), [
    ("good.key-1_x", []),
    (".", ["must not be '.'"]),
    ("..", ["must not be '..'"]),
    ("..2025_01_01", ["must not start with '..'"]),
    ("a/b", [vv.CONFIG_KEY_MESSAGE]),
    ("", [vv.CONFIG_KEY_MESSAGE]),
    ("x\n", [vv.CONFIG_KEY_MESSAGE]),  # Go's $ is end of text: a trailing newline does not match
    ("k" * 254, ["must be no more than 253 characters"]),
    ("é" * 127, ["must be no more than 253 characters", vv.CONFIG_KEY_MESSAGE]),  # bytes, not characters
])
def test_config_keys_follow_is_config_map_key(key: str, problems: list[str]) -> None:
    assert vv.config_key_problems(key) == problems


@pytest.mark.parametrize(("path", "messages"), [
    ("a/b", []),
    ("a/../b", ["must not contain '..'"]),
    ("../../x", ["must not contain '..'"]),
    ("/abs", ["must be a relative path"]),
    ("/../x", ["must be a relative path", "must not contain '..'"]),
    ("..data", ["must not start with '..'"]),
    ("../x", ["must not contain '..'"]),  # the prefix check skips what the element check already caught ...
    ("..", ["must not contain '..'", "must not start with '..'"]),  # ... but only for a "../" prefix
    ("a\\..\\b", []),  # on Linux a backslash is an ordinary file name character
])
def test_local_non_reserved_paths(path: str, messages: list[str]) -> None:
    causes = vv.local_non_reserved_path_causes(path, "f")
    assert [message.split(": ", 2)[2] for _, _, message in causes] == messages
    assert all(field == "f" for _, field, _ in causes)


def test_two_volume_types_and_none_at_all() -> None:
    both = vv.volume_source_causes({"name": "v", "emptyDir": {}, "downwardAPI": {}, "cephfs": {}}, "spec.volumes[0]")
    assert both == [  # in validateVolumeSource's order, with its spellings
        ("FieldValueForbidden", "spec.volumes[0].cephFS", "Forbidden: may not specify more than 1 volume type"),
        ("FieldValueForbidden", "spec.volumes[0].downwarAPI", "Forbidden: may not specify more than 1 volume type"),
    ]
    assert vv.volume_source_causes({"name": "v"}, "spec.volumes[0]") == [
        ("FieldValueRequired", "spec.volumes[0]", "Required value: must specify a volume type")]


def test_projected_sources_share_one_path_space() -> None:
    projected = {"sources": [
        {"configMap": {"name": "a", "items": [{"key": "k", "path": "same"}]}},
        {"secret": {"name": "b", "items": [{"key": "k", "path": "same"}]}},
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 60}},
        {"configMap": {"name": "c"}, "secret": {"name": "d"}},
    ]}
    causes = vv.volume_source_causes({"name": "p", "projected": projected}, "spec.volumes[0]")
    assert causes == [
        ("FieldValueInvalid", "spec.volumes[0].projected", 'Invalid value: "b": conflicting duplicate paths'),
        ("FieldValueInvalid", "spec.volumes[0].projected.sources[2].serviceAccountToken.expirationSeconds",
         "Invalid value: 60: may not specify a duration less than 10 minutes"),
        ("FieldValueForbidden", "spec.volumes[0].projected.sources[3]",
         "Forbidden: may not specify more than 1 volume type per source"),
    ]


def test_file_modes_stay_within_0777() -> None:
    volume = {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o4755,
                                     "items": [{"key": "k", "path": "p", "mode": -1}]}}
    assert vv.volume_source_causes(volume, "v") == [
        ("FieldValueInvalid", "v.secret.defaultMode", f"Invalid value: 2541: {vv.FILE_MODE_MESSAGE}"),
        ("FieldValueInvalid", "v.secret.items[0].mode", f"Invalid value: -1: {vv.FILE_MODE_MESSAGE}"),
    ]


def test_volumes_with_errors_are_left_out_and_duplicates_count_only_valid_ones() -> None:
    volumes = [{"name": "a", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../x"}]}},
               {"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]
    valid, causes = vv.volume_causes(volumes, "spec.volumes")
    assert valid == {"a"}
    assert [field for _, field, _ in causes] == ["spec.volumes[0].configMap.items[0].path", "spec.volumes[2].name"]


def test_mounts_sub_path_expr_and_sub_path_are_exclusive() -> None:
    mounts = [{"name": "v", "mountPath": "/m", "subPath": "a", "subPathExpr": "$(X)"},
              {"name": "v", "mountPath": "/m"}]
    assert vv.volume_mount_causes(mounts, {"v"}, "c.volumeMounts") == [
        ("FieldValueInvalid", "c.volumeMounts[0].subPathExpr",
         'Invalid value: "$(X)": subPathExpr and subPath are mutually exclusive'),
        ("FieldValueInvalid", "c.volumeMounts[1].mountPath", 'Invalid value: "/m": must be unique'),
    ]
