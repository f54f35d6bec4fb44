"""The training pipeline's components, one per file, in the order the pipeline runs them."""

from pipeline_src.components.deploy import deploy
from pipeline_src.components.evaluate import evaluate
from pipeline_src.components.extract import extract
from pipeline_src.components.gate import gate
from pipeline_src.components.record_metrics import record_metrics
from pipeline_src.components.register import register
from pipeline_src.components.split import split
from pipeline_src.components.train import train
from pipeline_src.components.validate import validate

COMPONENTS = (extract, validate, split, train, evaluate, gate, register, record_metrics, deploy)

__all__ = [
    "COMPONENTS",
    "deploy",
    "evaluate",
    "extract",
    "gate",
    "record_metrics",
    "register",
    "split",
    "train",
    "validate",
]
