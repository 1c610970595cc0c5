"""The PACS service: the DICOM node's own process (``cxr pacs``), apart from analysis.

- ``receiver``: the Storage SCP; what it accepts goes through ingest into the queue;
- ``results``: a study's SR and overlays, built from the results the worker stored;
- ``service``: the consumer of the worker's durable outbox (``db.pacs_result_jobs``): builds
  each study's result objects once and queues them for C-STORE, then runs the sender;
- ``sender``: C-STORE of queued objects to the destination, with retries and back-off;
- ``outbox``: what failed to send, as admins see and resend it.

The worker never imports this package (an import contract holds it): a PACS that is down,
slow or misconfigured never holds up analysis, and analysis never waits for the PACS.
"""
