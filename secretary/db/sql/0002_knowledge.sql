-- The knowledge base's documents: metadata and extracted text (passages and vectors live in ChromaDB,
-- one collection per domain). The text is kept so a document can be re-indexed without its upload.

CREATE TABLE v_ai_knowledge_documents (
    ai_knowledge_document_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    document_filename     text NOT NULL,
    document_content_type text NOT NULL,
    document_size_bytes   bigint NOT NULL CHECK (document_size_bytes >= 0),
    document_chunk_count  integer NOT NULL DEFAULT 0,
    document_status       text NOT NULL DEFAULT 'indexing'
                          CHECK (document_status IN ('indexing', 'indexed', 'failed')),
    document_error        text,
    document_text         text NOT NULL,
    document_sha256       text NOT NULL,
    insert_date           timestamptz NOT NULL DEFAULT now(),
    insert_user           uuid,
    update_date           timestamptz,
    update_user           uuid
);
CREATE INDEX v_ai_knowledge_documents_domain_idx ON v_ai_knowledge_documents (domain_uuid, insert_date DESC);
CREATE INDEX v_ai_knowledge_documents_filename_idx ON v_ai_knowledge_documents (domain_uuid, document_filename);
