"""The autonomy layer: APIS's deal making (:mod:`hil.autonomy.negotiation`, pure logic) and
the agents that run it on a bench (:mod:`hil.autonomy.agents`). See ``docs/autonomy.md``.
"""
