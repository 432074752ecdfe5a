/**
 * @module uploads-routes
 * POST /uploads/{id}/finalize, GET and DELETE /uploads/{id}. An upload exists from the moment
 * rsync creates its directory; until it is finalized the database may not know it, so GET
 * describes such a directory as `uploading`.
 */
import { lstatSync } from 'node:fs';
import type { Hono } from 'hono';
import type { ActorRef } from '../../runtime/actor.ts';
import type { FlashpodsConfig } from '../contract/config.ts';
import type { JobPaths } from '../contract/job-paths.ts';
import type { SchedulerProtocol } from '../scheduler/messages.ts';
import { checkUploadId, lstatUploadDir, uploadCreatedAt } from '../scheduler/uploads.ts';
import type { JobReads } from '../store/job-reads.ts';
import type { AppEnv } from './app.ts';
import { uploadView } from './views.ts';

export interface UploadsRoutesDeps {
  config: FlashpodsConfig;
  paths: JobPaths;
  reads: JobReads;
  scheduler: ActorRef<SchedulerProtocol>;
}

export function uploadsRoutes({ config, paths, reads, scheduler }: UploadsRoutesDeps) {
  return (app: Hono<AppEnv>) => {
    app.post('/uploads/:id/finalize', async (c) => {
      const id = c.req.param('id');
      checkUploadId(id);
      // Measuring a large tree can take a while; the scheduler does it off its event loop.
      const upload = await scheduler.call('finalizeUpload', { uploadId: id }, { timeoutMs: 120_000 });
      const view = uploadView(upload);
      return c.json({ upload_id: view.upload_id, state: view.state, size_bytes: view.size_bytes, file_count: view.file_count, finalized_at: view.finalized_at, expires_at: view.expires_at });
    });

    app.get('/uploads/:id', (c) => {
      const id = c.req.param('id');
      checkUploadId(id);
      const row = reads.upload(id);
      if (row) return c.json(uploadView(row));
      // The same judgement as finalize's: a link or a foreign directory is no upload. While a
      // finalize holds it (out of the module, not yet in the database) it is still uploading.
      const inModule = paths.rsyncUpload(id);
      const beingSealed = paths.sealedUpload(id);
      const path = !lstatSync(inModule, { throwIfNoEntry: false }) && lstatSync(beingSealed, { throwIfNoEntry: false }) ? beingSealed : inModule;
      const created = uploadCreatedAt(lstatUploadDir(path, id, process.geteuid!()));
      return c.json(uploadView({
        id, user_id: 'default', state: 'uploading', size_bytes: null, file_count: null, created_at: created,
        finalized_at: null, consumed_at: null, expires_at: created + config.ttl.uploadUnfinalizedMs, job_id: null,
      }));
    });

    app.delete('/uploads/:id', async (c) => {
      const id = c.req.param('id');
      checkUploadId(id);
      await scheduler.call('deleteUpload', { uploadId: id });
      return c.body(null, 204);
    });
  };
}
