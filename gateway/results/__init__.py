"""The result archive: finished videos and last frames copied into a store the gateway owns,
served from there once copied (gateway/results/serving.py), removed past retention."""
