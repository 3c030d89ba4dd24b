{% include "tasks/" ~ cookiecutter.task ~ "/test_task.py" %}
