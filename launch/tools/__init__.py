"""Protocol tooling: the conformance checker for third-party peers."""
