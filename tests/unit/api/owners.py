"""Two API keys for the tests of per-key ownership (tests/unit/api/conftest.py sets them)."""

ALICE = {"Authorization": "Bearer alice-key-0001"}
BOB = {"Authorization": "Bearer bob-key-0002"}
KEYS = "alice-key-0001,bob-key-0002"
