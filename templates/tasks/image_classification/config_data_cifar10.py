{% include "tasks/image_classification/config_data_torchvision.py" %}
