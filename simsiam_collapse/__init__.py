__version__ = "0.2.0"

# The public API at the top level; it needs torch, numpy and tqdm alone (the core install). Not exported from a notebook:
# nbdev keeps __init__.py as written (CONTRIBUTING.md).
from .collapse import SpectrumAccumulator, collapse_auc, collapse_measures, normalized_auc, rankme, singular_values
from .measures import label_free_measures
from .monitor import CollapseMonitor, lightning_callback, untouched
from .orderings import Ordering

__all__ = ["CollapseMonitor", "Ordering", "SpectrumAccumulator", "collapse_auc", "collapse_measures",
           "label_free_measures", "lightning_callback", "normalized_auc", "rankme", "singular_values", "untouched"]
