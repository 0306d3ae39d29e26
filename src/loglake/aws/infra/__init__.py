"""The CDK app's constructs, one per concern, composed by aws/stack.py."""
