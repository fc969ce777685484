import type { Cluster, ClusterDeliver } from './cluster.js';
import type { ResolvedTrackerOptions } from './options.js';

export async function connectRedisCluster(_options: ResolvedTrackerOptions, _deliver: ClusterDeliver): Promise<Cluster> {
  throw new Error('redis scale-out is not implemented yet');
}
