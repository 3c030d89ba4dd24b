{% include "tasks/image_classification/test_data_torchvision.py" %}
