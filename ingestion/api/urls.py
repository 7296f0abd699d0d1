from django.urls import path

from .views import JobDetailView, ProducerSlashView, ProducerView, QueueMetricsView

urlpatterns = [
    path("nexus/producer", ProducerView.as_view(), name="producer"),
    # The same endpoint with a trailing slash (a client's URL join adds one; a redirect would
    # turn the POST into a GET in some clients and costs a round trip in all).
    path("nexus/producer/", ProducerSlashView.as_view(), name="producer-slash"),
    path("nexus/jobs/<uuid:queue_id>", JobDetailView.as_view(), name="job-detail"),
    path("nexus/metrics", QueueMetricsView.as_view(), name="queue-metrics"),
]
