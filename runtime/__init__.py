"""The Lambda runtime: the only code that knows Lambda and the AWS SDK.

- ``app``: the application (every pipeline of a task root, routed by path), one event at a time;
- ``apigateway``: API Gateway proxy events in, proxy responses out;
- ``aws``: boto3 adapters for the engine's ports, AWS errors classified in one place;
- ``logs``, ``metrics``, ``tracing``: JSON log lines, CloudWatch EMF documents, X-Ray subsegments;
- ``layout``: where a task root keeps its pipelines and rules;
- ``plugins``: the one plugin list (the handler, the build and the tools read it) and ``load_plugins``.
"""
