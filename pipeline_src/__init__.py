"""The training pipeline (KFP v2): components, the DAG, compile, submit and the local runner."""
