"""The pieces of :class:`llmrelay.Router`: deployments and their health, strategies, policy.

``deployment``  one upstream model + its live state (in-flight, cooldown, rpm/tpm, latency)
``strategies``  how a deployment is picked from a group's available ones
``policy``      which failures are retried, how long to wait, which fallback list applies
``streams``     first-chunk peeking and end-of-stream bookkeeping for streamed calls
"""
