# Image for docker-compose.yml (first draft): Node 20 + PostgreSQL server binaries + Trustee.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql procps passwd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/trustee
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
RUN npm ci --no-audit --no-fund && npx tsc -b
ENV PATH=/opt/trustee/node_modules/.bin:$PATH
EXPOSE 11371 11381
# The node's first start (ktadmin init / db --bootstrap) and its processes: deploy/docker/entrypoint.sh.
COPY deploy/docker/entrypoint.sh /usr/local/bin/trustee-entrypoint
ENTRYPOINT ["/usr/local/bin/trustee-entrypoint"]
