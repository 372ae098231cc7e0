# The collector's live-server fixtures, to read the metric names it really exports.
from tests.collector.conftest import make_server, web1  # noqa: F401 (fixtures)
