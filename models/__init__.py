"""The domain and ML core of vea: plain data in, plain data out.

Nothing here imports a web framework or a database; training and the service both
build on these modules.
"""
