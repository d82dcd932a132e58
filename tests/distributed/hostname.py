"""
``[core] hostname_callable`` of the distributed test deployment: one name per component, not per machine.

Every component runs on this one machine, so Airflow's default (the FQDN) would record the same host for both
Celery workers in ``task_instance.hostname`` and for both triggerers in ``job.hostname``, and the test could not
tell which one ran a task or held a trigger. Each component is started with ``OMS_DIST_COMPONENT`` set to its
name (``worker1``, ``triggerer2``, ...); every process it starts inherits the variable.
"""

from __future__ import annotations

import os
import socket

COMPONENT_VARIABLE = "OMS_DIST_COMPONENT"


def component_hostname() -> str:
    """The component name this process was started under, or the machine's FQDN outside the test deployment."""
    return os.environ.get(COMPONENT_VARIABLE) or socket.getfqdn()
