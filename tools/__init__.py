"""Tools for people, never shipped in the Lambda artifact.

- ``dryrun``: ``pipeline-dryrun`` (replays with no side effects), ``pipeline-event`` and ``pipeline-world``;
- ``check`` (with ``check_files``, ``check_hints``, ``check_kinds``, ``check_owners``, ``check_reads``), ``lint``:
  ``pipeline-dryrun --check``;
- ``rules`` (with ``shadow_record``): ``pipeline-rules``, rules bundles published to S3 and deployed without a code
  deploy, and the shadow candidate's record read from CloudWatch;
- ``serve`` (with ``httpbody``, ``watch``): ``pipeline-serve``, the handler over HTTP as API Gateway would call it;
- ``events``, ``sendgrid_events``: API Gateway events built from HTTP requests, SendGrid's posts and signatures;
- ``localaws``, ``needs``: the contract's resources in an emulator, as the pipelines' YAML declares them;
- ``iam``: the least-privilege grants a pipeline needs; ``schema_export``: editor JSON Schemas; ``stamp``: the
  build's configuration stamp;
- ``console``, ``private``, ``requires``: what every console script shares, files readable by their owner only,
  the development-only dependencies.

Their development-only dependencies are the ``tools`` extra (``pip install 'inbound-webhook-pipeline[tools]'``).
"""
