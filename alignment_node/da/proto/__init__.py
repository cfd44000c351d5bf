"""Protobuf/gRPC code for the DA signer service.

signer.proto is byte-for-byte 0glabs/0g-da-node grpc/proto/signer.proto at commit
a8f70f91208107862075769d569ec2b5f7d80b13 (file last changed in aa8eb2120d3977000aa68da38776fc375c5f18a4).
signer_pb2.py, signer_pb2.pyi and signer_pb2_grpc.py are generated from it, from the repository root, with
grpcio-tools 1.85.1:

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. alignment_node/da/proto/signer.proto

The proto package stays ``signer``, so method paths are ``/signer.Signer/BatchSign`` etc. as the node serves them.
"""
