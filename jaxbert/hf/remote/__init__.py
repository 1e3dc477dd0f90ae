"""The PyTorch code an exported crammed model carries: transformers loads it with
trust_remote_code=True from the export directory, where writing.py copies these two files.

Importing this package needs nothing; importing its modules needs torch and transformers.
"""
