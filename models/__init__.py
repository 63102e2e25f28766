"""Pure PyTorch models and losses, built by name through :mod:`models.registry`.

This package never imports ray or mlflow. Model families are imported here explicitly (no
directory scanning) so that importing ``models`` registers them.
"""

from models import apbsn, lgbpn, losses, ssid  # noqa: F401  (registers the families and losses)
from models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
