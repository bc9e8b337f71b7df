"""Directory pages, under /directory/."""

from django.urls import path

from yakuba.directory.views import directory as views

app_name = "directory"

urlpatterns = [
    path("", views.search, name="search"),
    path("departments/", views.departments, name="departments"),
    path("staff/<str:employee_number>/", views.staff_detail, name="staff"),
    path("import/", views.import_csv, name="import"),
    path("export/<slug:kind>.csv", views.export_csv, name="export"),
]
