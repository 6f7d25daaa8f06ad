"""Routes of the knowledge base pages."""

from django.urls import path

from ..views import chatbot, knowledge

urlpatterns = [
    path("stacks/<int:pk>/knowledge/", knowledge.knowledge_list, name="knowledge_list"),
    path("knowledge/<int:pk>/", knowledge.knowledge_detail, name="knowledge_detail"),
    path("knowledge/<int:pk>/upload/", knowledge.knowledge_upload, name="knowledge_upload"),
    path("knowledge/<int:pk>/import/", knowledge.knowledge_import, name="knowledge_import"),
    path(
        "knowledge/<int:pk>/add/<str:source>/",
        knowledge.knowledge_add_source,
        name="knowledge_add_source",
    ),
    path("knowledge/<int:pk>/search/", knowledge.knowledge_search, name="knowledge_search"),
    path("knowledge/<int:pk>/delete/", knowledge.knowledge_delete, name="knowledge_delete"),
    path("documents/<int:pk>/delete/", knowledge.document_delete, name="document_delete"),
    path(
        "documents/<int:pk>/reimport/<int:option>/",
        knowledge.document_reimport,
        name="document_reimport",
    ),
    path("stacks/<int:pk>/publish/", chatbot.chatbot_publish, name="chatbot_publish"),
    path("stacks/<int:pk>/publish/upload/", chatbot.chatbot_upload, name="chatbot_upload"),
    path("chatbots/<int:pk>/", chatbot.chatbot_progress, name="chatbot_progress"),
]
