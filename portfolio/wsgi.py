import gc
import os
import sys

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio.settings")

application = get_wsgi_application()

# A web worker's threads mostly wait on PostgreSQL and Redis. A thread whose answer has arrived
# waits for the GIL until the running thread yields it, by default up to 5 ms, and a request
# makes several round trips: under load that wait, not CPU, was most of a request's time.
sys.setswitchinterval(settings.GIL_SWITCH_INTERVAL_MS / 1000)

# What is loaded by now (Django and the apps: about 100,000 objects) lives as long as
# the process. Frozen, the collector never walks it again: a full collection took about 70 ms,
# every thread of the worker waiting, often enough to set the paced p99 (docs/PERFORMANCE.md).
gc.collect()
gc.freeze()
