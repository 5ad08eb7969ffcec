// Builds the app once before the browser tier: the tests run the production bundle, as users get it.
import { build } from 'vite';

export default async function setup(): Promise<void> {
  await build({ logLevel: 'warn' });
}
