"""Installs tinyml-tfx: the pipeline, its components and the schemas they validate against."""

from setuptools import find_packages, setup

setup(
    name="tinyml-tfx",
    version="0.1.0",
    description="A TFX pipeline from raw sensor data to an int8 model that fits a microcontroller.",
    python_requires=">=3.9,<3.14",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "schemas"]),
    package_data={
        "pipeline": ["configs/*.yaml", "ui/templates/*.j2"],
        "components": ["mcu_size_gate/devices/*.yaml", "mcu_size_gate/kernel_flash.json",
                       "mcu_size_gate/calibration/*.yaml", "mcu_size_gate/calibration/mlperf_tiny/*",
                       "telemetry/*.h"],
        "schemas": ["*.json", "*.pbtxt", "*/*.pbtxt", "tasks/*.json"],
    },
    # Exact versions of everything live in requirements.lock; these are the direct needs.
    install_requires=[
        "tfx==1.21.0",
        "tflite-micro",
        "espeakng-loader",
        "PyYAML",
        "jsonschema",
        "click",
        "rich",
        "requests",
        "cryptography",
        # TFX 1.21 declares kfp only for Python < 3.12; the Kubeflow runner needs it on 3.13 too.
        "kfp>=2.16,<2.17",
        "kfp-pipeline-spec>=2.16,<2.17",
        "kfp-kubernetes>=2.16,<2.17",
    ],
    extras_require={"test": ["pytest", "pytest-xdist", "kubernetes-validate"]},
    entry_points={"console_scripts": ["tinyml-tfx=pipeline.ui.cli:main"]},
)
