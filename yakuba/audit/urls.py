"""The auditor's pages, under /audit/."""

from django.urls import path

from yakuba.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.search, name="search"),
    path("export.csv", views.export_csv, name="export_csv"),
]
