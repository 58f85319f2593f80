"""The Lambda runtime: the only code that knows Lambda and the AWS SDK.

- ``app``: the application (every pipeline of a task root, routed by path), one event at a time;
- ``apigateway``: API Gateway proxy events in, proxy responses out;
- ``aws``, ``dynamowire``: boto3 adapters for the engine's ports, AWS errors classified in one place; DynamoDB's
  typed JSON;
- ``logs``, ``metrics``, ``tracing``: JSON log lines, CloudWatch EMF documents, X-Ray subsegments;
- ``layout``: where a task root keeps its pipelines and rules;
- ``plugins``: the one plugin list (the handler, the build and the tools read it) and ``load_plugins``;
- ``stamp``, ``verify``, ``resources``: what keeps a configuration from being used (the build's proof of schema
  validation, failing inline tests, resource names the clients would be refused);
- ``bundles``, ``bundlewatch``, ``shadow``: rules bundles deployed to S3, read while the Lambda runs, and a shadow
  candidate deciding every event again to no effect;
- ``capture``, ``masking``: sampled events written to S3 for replay, masked;
- ``misroute``: the signature check of a message refused for its path or Host.
"""
