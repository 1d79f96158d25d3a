#!/usr/bin/env node
// Starts @vercel/cosmosdb-server for the storage contract suite: `node serve.js PORT`.
//
// Four differences from the package's own CLI, each to behave like real Cosmos DB:
// - replacing a container (the provider adds a declared composite index an existing container
//   lacks) keeps its documents. The package builds a new, empty container object on replace,
//   so every document would vanish with the indexing-policy change.
// - a composite index serves an ORDER BY in its own direction on every path and also in the
//   opposite direction on every path (Cosmos DB's indexing-policy documentation: an index
//   `(a ASC, b ASC)` serves `ORDER BY a DESC, b DESC`). The package's query engine accepts
//   only the index's own direction, so it would refuse half the orderings core declares.
// - reading a missing document answers 404 NotFound. The package's handler dereferences the
//   missing document and answers 500 (a TypeError), which no real service does; the provider
//   must not learn to read 500 as "not found", so the fix lives here, in the test server.
// - connections are kept alive, as Azure's gateway does; the CLI closes each connection after
//   one response, which would make every request pay a new TLS handshake.
"use strict";

const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");
const partitionHeader = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header");

const originalRead = readDocument.default;
// Patched before the router is loaded: the route table captures the handler when it is built.
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  if (collection.read()) {
    const key = partitionHeader.parsePartitionKey(partitionHeader.default(req), params.docId);
    if (!collection.document(params.docId, key).read()) {
      res.statusCode = 404;
      return {
        code: "NotFound",
        message: "Entity with the specified id does not exist in the system.",
      };
    }
  }
  return originalRead(account, req, res, params);
};

const Collections = require("@vercel/cosmosdb-server/lib/account/collections").default;

const originalReplace = Collections.prototype.replace;
Collections.prototype.replace = function keepDocuments(data, original) {
  const previous = this._data.get(original._rid);
  const replaced = originalReplace.call(this, data, original);
  const current = this._data.get(original._rid);
  if (previous && current && previous !== current) {
    for (const part of ["documents", "partitionKeyRanges", "userDefinedFunctions"]) {
      current[part] = previous[part];
      current[part]._parent = current;
    }
  }
  return replaced;
};

// The server's own copy of its query engine, which calls its helpers through this module
// object at run time.
const queryHelpers = require(
  require.resolve("@zeit/cosmosdb-query/lib/helpers", {
    paths: [require.resolve("@vercel/cosmosdb-server")],
  }),
);

const reversed = (index) =>
  index.map((part) => ({
    ...part,
    order: part.order === "descending" ? "ascending" : "descending",
  }));
const originalSort = queryHelpers.sort;
queryHelpers.sort = (collection, getRid, compositeIndexes, ...orders) =>
  originalSort(
    collection,
    getRid,
    compositeIndexes && compositeIndexes.flatMap((index) => [index, reversed(index)]),
    ...orders,
  );

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const port = Number.parseInt(process.argv[2] ?? "", 10);
if (!Number.isInteger(port)) {
  console.error("usage: node serve.js PORT");
  process.exit(2);
}
createHttpsServer({ keepAlive: true }).listen(port, "127.0.0.1", () => {
  console.log(`cosmosdb-server listening on https://127.0.0.1:${port}`);
});
