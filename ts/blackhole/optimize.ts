/* eslint-disable */
export async function optimizeAbsorption(..._a: any[]): Promise<any> { throw new Error('temp'); }
