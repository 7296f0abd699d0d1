from django.urls import path

from .views import JobDetailView, ProducerView, QueueMetricsView

urlpatterns = [
    path("nexus/producer", ProducerView.as_view(), name="producer"),
    path("nexus/jobs/<uuid:queue_id>", JobDetailView.as_view(), name="job-detail"),
    path("nexus/metrics", QueueMetricsView.as_view(), name="queue-metrics"),
]
