"""Activities: every mutation runs as one, with an ID, a state, a log and a percentage.

``claims`` starts or queues one, ``running`` runs it (under a ``lease``), ``recovery`` ends
those whose runner is gone, ``listing`` reads and cancels them, ``operations`` starts the
use cases, ``registry``/``runners`` map each activity type to its work, ``workers`` run
the queue, ``recorder`` is what engines report to, and ``info`` is what front ends get.
"""
