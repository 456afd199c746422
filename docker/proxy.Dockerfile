# The HTTP front of the compose deployment: Debian's HAProxy on the project's one base image, with
# docker/haproxy/haproxy.cfg (connection, queue, header and timeout limits; probes and live
# streams on slots of their own; problem+json errors). Built and started by docker-compose.yml.
FROM python:3.11-slim

RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* \
    && haproxy -v

COPY docker/haproxy /usr/local/etc/haproxy
# the service's compose name: Docker's DNS answers with every replica (`--scale emoface=N`), up to 8
ENV EMOFACE_PROXY_BIND=:8000 \
    EMOFACE_UPSTREAM=emoface:8000 \
    EMOFACE_REPLICA_SLOTS=8
RUN EMOFACE_UPSTREAM=127.0.0.1:8000 haproxy -c -q -f /usr/local/etc/haproxy/haproxy.cfg

USER haproxy
EXPOSE 8000
# SIGUSR1: soft stop. HAProxy stops accepting, lets in-flight requests finish (at most
# hard-stop-after, 9 s), then exits; compose stops it before the service behind it.
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
