"""Certification reports: JSON, HTML with plots, JUnit XML, and the history tables."""

from harness.report._writer import CertificationReport, write_report

__all__ = ["CertificationReport", "write_report"]
