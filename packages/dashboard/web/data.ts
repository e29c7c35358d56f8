import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, get } from './api.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiFailure | Error | undefined;
  loading: boolean;
  reload: () => void;
}

/** GETs an API path (null: nothing yet); keeps the last data while reloading so live refreshes do not flicker. */
export function useApi<T>(path: string | null): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: path !== null });
  const seq = useRef(0);
  const load = useCallback(() => {
    if (path === null) return;
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    get<T>(path).then(
      (data) => {
        if (mine === seq.current) setState({ data, loading: false });
      },
      (error: Error) => {
        if (mine === seq.current) setState({ error, loading: false });
      },
    );
  }, [path]);
  useEffect(load, [load]);
  return { data: state.data, error: state.error, loading: state.loading, reload: load };
}

/** True for the API's "your role may not read this" answer. */
export function forbidden(e: unknown): boolean {
  return e instanceof ApiFailure && e.status === 403;
}
