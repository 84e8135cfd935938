"""Collectors: all of the harness's I/O. Each family (kube, arm, issuer) sits behind one swappable seam
and returns plain facts (:mod:`harness.facts`); nothing here decides pass or fail."""
