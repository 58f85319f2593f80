"""``pipeline-dryrun``: replay recorded webhook events through the Lambda's pipeline with no side effects.

- ``cli``: the command line (``--check`` goes to ``tools.check``; a replay to ``replay.run_replay``); ``paths``:
  the configuration paths it is given, checked for the usual mix-ups;
- ``replay``: options, lanes per rule set, rendering, exit status; ``coverage``: a lane's pipelines when its rules
  directory holds one pipeline's rules (a pulled bundle);
- ``lanes``: the Lambda's ``Application`` over recording (world) or planning (real account) services;
- ``world``, ``backends``, ``blueprint``, ``memory``: world files and the worlds they load into
  (moto in-process, or the in-memory ports); ``live``: reading the real account;
- ``recording``: port wrappers that record or plan every write and send;
- ``pipeline``: the pipeline adapted for a replay (``--skip-signature``, no threads);
- ``report``, ``mask``: the JSON lines, the table, masking and credential scrubbing; ``report_file``,
  ``report_page``, ``report_screenshot``: the HTML decision report (``--report FILE``) and its screenshot;
- ``events``: event files; ``parallel``: replays spread over cores; ``corpus``: generated worlds and events;
- ``event_cli``: ``pipeline-event``, events built, signed or masked; ``world_cli``, ``snapshot``, ``capture``:
  ``pipeline-world``, worlds snapshotted from the account and event files and worlds masked to share.
"""
