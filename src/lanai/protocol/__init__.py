"""The values every door and the client share, and their wire forms.

``wire``: dataclasses that are their own JSON shape, with JSON Schemas; ``v2``: the Open Inference
Protocol's metadata and repository values; ``infer``: its inference bodies (JSON and binary tensors) in
both directions; ``health``: the server's health report. Nothing here imports a door or the data plane.
"""
