"""Leader election and the leader-only housekeeping jobs.

Design
------
One lock record (`name`) holds the leader's id and a lease expiry in wall-clock UTC. Every server tries to
take or renew it each `renew_every`; the store grants it only if it is free, expired, or already ours. The
store is authoritative: a server is leader only between a successful acquire and its own local deadline
(`lease` after the acquire was *sent*, measured on the monotonic clock), so a server that cannot reach the
store stops its jobs before anyone else can take the lock.

Limits: expiry is judged against wall clocks, so servers' clocks must agree to well within `lease`
(NTP-synchronised hosts do). The jobs are written to be safe even if two leaders briefly overlap: every
write is conditional on version, and recurring slots have deterministic ids.
"""
