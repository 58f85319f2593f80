"""``pipeline-dryrun``: replay recorded webhook events through the Lambda's pipeline with no side effects.

- ``cli``: the command line (``--check`` goes to ``tools.check``; a replay to ``replay.run_replay``);
- ``replay``: options, lanes per rule set, rendering, exit status;
- ``lanes``: the Lambda's ``Application`` over recording (world) or planning (real account) services;
- ``world``, ``backends``, ``blueprint``, ``memory``: world files and the worlds they load into
  (moto in-process, or the in-memory ports);
- ``recording``: port wrappers that record or plan every write and send;
- ``pipeline``: the pipeline adapted for a replay (``--skip-signature``, no threads);
- ``report``, ``mask``: the JSON lines, the table, masking and credential scrubbing;
- ``events``: event files; ``parallel``: replays spread over cores; ``corpus``: generated worlds and events;
- ``capture``: recording events from the function for later replay.
"""
