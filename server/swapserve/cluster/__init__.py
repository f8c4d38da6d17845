"""``--workers``: processes sharing one port (supervisor.py) and admin changes converging
across them (coordinator.py)."""
