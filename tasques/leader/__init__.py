"""Leader election and the leader-only housekeeping jobs.

One lock record holds the leader's id and a lease expiry in wall-clock UTC; the store is authoritative. A
server leads only between a successful acquire and its own local deadline (`lease` after the acquire was
*sent*, on the monotonic clock), enforced by a watchdog whatever the store call is doing. A stopping server
never takes the lock again. States, clock assumptions, the stop sequence and the limits: README.md.
"""
