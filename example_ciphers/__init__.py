"""A demo of Tasques: a web page enqueues cipher tasks; a Python worker and a Go worker encode them.

See example_ciphers/README.md.
"""
