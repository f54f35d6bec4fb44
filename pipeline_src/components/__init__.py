"""The training pipeline's components, one per file (training.py lists them in running order).

Import a component from its module (`from pipeline_src.components.train import train`): the
package does not re-export them, so `pipeline_src.components.train` stays the module.
"""
