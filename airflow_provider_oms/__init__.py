"""Apache Airflow provider for Huawei Cloud OMS (Object Storage Migration Service)."""

__version__ = "0.1.0"
