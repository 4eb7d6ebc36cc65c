"""Where the original Cloudburst kept its generated protobuf modules; only
:mod:`cloudburst.shared.proto.cloudburst_pb2`'s constants are provided."""
