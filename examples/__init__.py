"""Example user code for cnnbench suites (see suites/user_model.yaml)."""
