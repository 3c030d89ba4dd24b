{% include "notebook/class_samples.py" %}
