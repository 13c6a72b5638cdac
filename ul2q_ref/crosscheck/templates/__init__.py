"""Files the checker hands to users: the standalone adapter template (``adapter_template.py``)."""
