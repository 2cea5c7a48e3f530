"""The parts of scripts/rehearse_deploy.py that run what was built: the layer's mapping, the Lambda-like run, IAM."""
