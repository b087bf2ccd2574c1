"""Segment's official Python library (segment-analytics-python, from PyPI)
pointed at `idfold serve`: it sends what an app would, in its own batches
(gzip-compressed, write key as HTTP Basic user name), and prints the
errors it saw as JSON.

    segment_client.py HOST WRITE_KEY BULK
"""
import json
import sys

from segment import analytics

host, write_key, bulk = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []

analytics.write_key = write_key
analytics.host = host
analytics.gzip = True
analytics.max_retries = 3
analytics.on_error = lambda error, batch: errors.append(str(error))

analytics.identify("u-ann", {"email": "Ann@Example.com", "plan": "pro"}, anonymous_id="d-ann")
analytics.track("u-ann", "Signed Up", {"plan": "pro"})
analytics.page("u-ann", name="Pricing", properties={"path": "/pricing"})
analytics.alias("d-ann-phone", "u-ann")
analytics.group("u-ann", "g-acme", {"name": "Acme"})
analytics.identify("u-bob", {"plan": "free"})
analytics.screen("u-bob", name="Home")
analytics.track(anonymous_id="d-visitor", event="Survey Shown", properties={"survey_id": "nps"})
analytics.track(anonymous_id="d-lurker", event="Clicked")
# More than one of the library's batches (100 messages each).
for i in range(bulk):
    analytics.track("u-bob", "Clicked", {"i": i})

analytics.flush()
analytics.shutdown()
print(json.dumps({"errors": errors}))
